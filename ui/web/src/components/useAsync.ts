// Loading data in a view: one request per change of its inputs, errors kept as text for
// the view to show. By default a change cancels the request in flight; with `coalesce`
// (slow analyses under live refresh) the request in flight finishes and one more starts
// after it with the latest inputs, so the server never piles up abandoned work.
import { useEffect, useRef, useState } from "preact/hooks";
import { isAbort } from "../api";

/** The state of one asynchronous load. */
export interface Async<T> {
  data?: T;
  error?: string;
  loading: boolean;
}

type Load<T> = ((signal: AbortSignal) => Promise<T>) | null;

/** Runs `load` whenever `deps` change; a `null` load means "nothing to load". */
export function useAsync<T>(load: Load<T>, deps: unknown[], options: { coalesce?: boolean } = {}): Async<T> {
  const [state, setState] = useState<Async<T>>({ loading: load !== null });
  const latest = useRef<Load<T>>(load);
  latest.current = load;
  const running = useRef<AbortController | null>(null);
  const pending = useRef(false);

  const start = () => {
    const fn = latest.current;
    if (!fn) {
      setState({ loading: false });
      return;
    }
    const controller = new AbortController();
    running.current = controller;
    setState((s) => ({ data: s.data, loading: true }));
    fn(controller.signal)
      .then(
        (data) => {
          if (!controller.signal.aborted) setState({ data, loading: false });
        },
        (error: unknown) => {
          if (controller.signal.aborted || isAbort(error)) return;
          setState({ error: error instanceof Error ? error.message : String(error), loading: false });
        },
      )
      .finally(() => {
        if (running.current !== controller) return;
        running.current = null;
        if (options.coalesce && pending.current) {
          pending.current = false;
          start();
        }
      });
  };

  useEffect(() => {
    if (options.coalesce && running.current && latest.current) {
      pending.current = true;
      return;
    }
    running.current?.abort();
    running.current = null;
    start();
    if (options.coalesce) return;
    return () => {
      running.current?.abort();
      running.current = null;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);

  useEffect(
    () => () => {
      running.current?.abort();
      running.current = null;
    },
    [],
  );
  return state;
}
