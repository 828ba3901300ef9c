// Loading data in a view: one request per change of its inputs, superseded requests
// cancelled, errors kept as text for the view to show.
import { useEffect, useState } from "preact/hooks";
import { isAbort } from "../api";

/** The state of one asynchronous load. */
export interface Async<T> {
  data?: T;
  error?: string;
  loading: boolean;
}

/** Runs `load` whenever `deps` change; `null` from `load`'s caller means "nothing to load". */
export function useAsync<T>(
  load: ((signal: AbortSignal) => Promise<T>) | null,
  deps: unknown[],
): Async<T> {
  const [state, setState] = useState<Async<T>>({ loading: load !== null });
  useEffect(() => {
    if (!load) {
      setState({ loading: false });
      return;
    }
    const controller = new AbortController();
    setState((s) => ({ data: s.data, loading: true }));
    load(controller.signal).then(
      (data) => {
        if (!controller.signal.aborted) setState({ data, loading: false });
      },
      (error: unknown) => {
        if (controller.signal.aborted || isAbort(error)) return;
        setState({ error: error instanceof Error ? error.message : String(error), loading: false });
      },
    );
    return () => controller.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);
  return state;
}
