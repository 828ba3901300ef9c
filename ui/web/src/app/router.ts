// URL state: every view lives at `/ui/<view>` and keeps its state in the query string,
// so any screen can be shared as a link. `/` shows the service map.
import { useEffect, useState } from "preact/hooks";

/** The views of the app, in navigation order. */
export const VIEWS = ["map", "traces", "logs", "metrics", "sql"] as const;
export type ViewName = (typeof VIEWS)[number];

export const VIEW_TITLES: Record<ViewName, string> = {
  map: "Service map",
  traces: "Traces",
  logs: "Logs",
  metrics: "Metrics",
  sql: "SQL",
};

/** The current location as a view and its parameters. */
export interface Route {
  view: ViewName;
  params: URLSearchParams;
}

/** Parameter updates: `undefined` or `""` removes a parameter. */
export type ParamPatch = Record<string, string | number | undefined>;

export function parseLocation(loc: Location = window.location): Route {
  const match = /^\/ui\/([a-z]+)\/?$/.exec(loc.pathname);
  const name = match?.[1];
  const view = (VIEWS as readonly string[]).includes(name ?? "") ? (name as ViewName) : "map";
  return { view, params: new URLSearchParams(loc.search) };
}

/** The href of a view with parameters (the time range is carried by the caller). */
export function href(view: ViewName, params: URLSearchParams | ParamPatch = {}): string {
  const search = params instanceof URLSearchParams ? params : toSearch(params);
  const query = search.toString();
  return `/ui/${view}${query ? `?${query}` : ""}`;
}

function toSearch(patch: ParamPatch, base = new URLSearchParams()): URLSearchParams {
  const out = new URLSearchParams(base);
  for (const [key, value] of Object.entries(patch)) {
    if (value === undefined || value === "") out.delete(key);
    else out.set(key, String(value));
  }
  return out;
}

/** Goes to a view; keeps the time range (`from`, `to`, `refresh`) unless overridden. */
export function navigate(view: ViewName, patch: ParamPatch = {}, opts: { replace?: boolean } = {}) {
  const current = new URLSearchParams(window.location.search);
  const base = new URLSearchParams();
  for (const key of ["from", "to", "refresh"]) {
    const value = current.get(key);
    if (value !== null) base.set(key, value);
  }
  go(href(view, toSearch(patch, base)), opts.replace);
}

/** Updates parameters of the current view in place. */
export function setParams(patch: ParamPatch, opts: { replace?: boolean } = {}) {
  const route = parseLocation();
  go(href(route.view, toSearch(patch, route.params)), opts.replace);
}

/** Opens an app URL (`/ui/<view>?...`) without reloading the page. */
export function openHref(url: string, opts: { replace?: boolean } = {}) {
  go(url, opts.replace);
}

/**
 * Click handler for `<a href="/ui/...">`: plain left clicks navigate inside the app,
 * modified clicks (new tab, new window) keep the browser's behaviour.
 */
export function followLink(event: MouseEvent) {
  if (event.defaultPrevented || event.button !== 0) return;
  if (event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) return;
  const anchor = (event.currentTarget ?? event.target) as HTMLAnchorElement | null;
  const url = anchor?.getAttribute?.("href");
  if (!url || !url.startsWith("/ui/")) return;
  event.preventDefault();
  go(url);
}

function go(url: string, replace = false) {
  if (url === window.location.pathname + window.location.search) return;
  if (replace) window.history.replaceState(null, "", url);
  else window.history.pushState(null, "", url);
  window.dispatchEvent(new Event("sightline:navigate"));
}

/** The current route; re-renders on navigation and on back/forward. */
export function useRoute(): Route {
  const [route, setRoute] = useState(parseLocation);
  useEffect(() => {
    const update = () => setRoute(parseLocation());
    window.addEventListener("popstate", update);
    window.addEventListener("sightline:navigate", update);
    return () => {
      window.removeEventListener("popstate", update);
      window.removeEventListener("sightline:navigate", update);
    };
  }, []);
  return route;
}
