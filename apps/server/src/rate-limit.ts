/** A fixed-window counter per key (an IP address), in memory: enough for one instance's abuse guard. */
export class RateLimiter {
  readonly limit: number;
  readonly windowMs: number;
  readonly #hits = new Map<string, { count: number; resetAt: number }>();

  constructor(limit: number, windowMs = 60_000) {
    this.limit = limit;
    this.windowMs = windowMs;
  }

  /** Records a hit; returns false when the key is over its limit for this window. */
  hit(key: string, now = Date.now()): boolean {
    const entry = this.#entry(key, now);
    entry.count++;
    return entry.count <= this.limit;
  }

  /** True when the key is already over its limit (without recording a hit). */
  blocked(key: string, now = Date.now()): boolean {
    return this.#entry(key, now).count >= this.limit;
  }

  /** Forgets one key, or every key (an operator lifting a block; tests). */
  reset(key?: string): void {
    if (key === undefined) this.#hits.clear();
    else this.#hits.delete(key);
  }

  /** Seconds until the key's window resets. */
  retryAfter(key: string, now = Date.now()): number {
    const entry = this.#hits.get(key);
    return entry ? Math.max(1, Math.ceil((entry.resetAt - now) / 1000)) : 1;
  }

  #entry(key: string, now: number): { count: number; resetAt: number } {
    let entry = this.#hits.get(key);
    if (!entry || entry.resetAt <= now) {
      if (this.#hits.size > 100_000) this.#sweep(now);
      entry = { count: 0, resetAt: now + this.windowMs };
      this.#hits.set(key, entry);
    }
    return entry;
  }

  #sweep(now: number): void {
    for (const [key, entry] of this.#hits) if (entry.resetAt <= now) this.#hits.delete(key);
  }
}
