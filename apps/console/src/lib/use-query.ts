import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiFailure } from './api-client.ts';

export interface QueryState<T> {
  data: T | undefined;
  error: ApiFailure | undefined;
  loading: boolean;
  reload(): void;
}

/**
 * Loads `load()` whenever `key` changes, and again every `refreshMs` while the tab is visible
 * (pages of a moving rollout refresh by themselves). A refresh keeps the last data on screen.
 */
export function useQuery<T>(key: string, load: () => Promise<T>, refreshMs?: number): QueryState<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<ApiFailure | undefined>(undefined);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  const keyRef = useRef(key);

  useEffect(() => {
    let live = true;
    if (keyRef.current !== key) {
      keyRef.current = key;
      setData(undefined);
    }
    setLoading(true);
    loadRef.current().then(
      (value) => {
        if (!live) return;
        setData(value);
        setError(undefined);
        setLoading(false);
      },
      (e: unknown) => {
        if (!live) return;
        setError(e instanceof ApiFailure ? e : new ApiFailure(0, 'CLP_E_CONSOLE', String(e)));
        setLoading(false);
      },
    );
    return () => {
      live = false;
    };
  }, [key, tick]);

  useEffect(() => {
    if (!refreshMs) return;
    const timer = setInterval(() => {
      if (document.visibilityState === 'visible') setTick((t) => t + 1);
    }, refreshMs);
    return () => clearInterval(timer);
  }, [refreshMs, key]);

  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { data, error, loading, reload };
}
