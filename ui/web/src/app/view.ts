import type { TimeRange } from "./time";

/** What every view receives from the app shell. */
export interface ViewProps {
  /** The view's URL state (the query string; `from`/`to`/`refresh` are the shell's). */
  params: URLSearchParams;
  /** The resolved time range of the time picker. */
  range: TimeRange;
  /** Increments on every live-refresh tick and on "refresh": reload data when it changes. */
  tick: number;
}
