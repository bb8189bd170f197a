/**
 * A fixed-window counter per key (an address, a credential's hash), in memory: enough for one
 * instance's abuse guard. At most `maxKeys` are kept, the oldest forgotten first, so that a
 * stream of distinct keys cannot grow it without bound.
 */
export class RateLimiter {
  readonly limit: number;
  readonly windowMs: number;
  readonly #maxKeys: number;
  readonly #hits = new Map<string, { count: number; resetAt: number }>();

  constructor(limit: number, windowMs = 60_000, maxKeys = 100_000) {
    this.limit = limit;
    this.windowMs = windowMs;
    this.#maxKeys = maxKeys;
  }

  /** Records a hit; returns false when the key is over its limit for this window. */
  hit(key: string, now = Date.now()): boolean {
    const entry = this.#entry(key, now);
    entry.count++;
    return entry.count <= this.limit;
  }

  /** True when the key is already over its limit (without recording a hit). */
  blocked(key: string, now = Date.now()): boolean {
    // Read only: asking about a key (every valid credential is asked about) must not store it.
    const entry = this.#hits.get(key);
    return entry !== undefined && entry.resetAt > now && entry.count >= this.limit;
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
      if (this.#hits.size >= this.#maxKeys) this.#sweep(now);
      entry = { count: 0, resetAt: now + this.windowMs };
      this.#hits.delete(key);
      this.#hits.set(key, entry);
    }
    return entry;
  }

  #sweep(now: number): void {
    for (const [key, entry] of this.#hits) if (entry.resetAt <= now) this.#hits.delete(key);
    // Still nearly full: the keys made longest ago go first (a Map iterates in insertion order),
    // a tenth at a time, so that a stream of new keys costs a sweep per tenth, not per key.
    const keep = Math.floor(this.#maxKeys * 0.9);
    for (const key of this.#hits.keys()) {
      if (this.#hits.size <= keep) break;
      this.#hits.delete(key);
    }
  }
}
