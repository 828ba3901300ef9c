// An in-app link: a real `<a href>` (shareable, opens in a new tab with a modifier)
// that navigates without reloading on a plain click.
import type { ComponentChildren } from "preact";
import { followLink } from "../app/router";

export interface LinkProps {
  href: string;
  children: ComponentChildren;
  class?: string;
  title?: string;
  testid?: string;
  /** Extra `data-*` attributes, e.g. `{ kind: "trace" }` → `data-kind="trace"`. */
  data?: Record<string, string | undefined>;
}

export function Link({ href, children, class: className, title, testid, data = {} }: LinkProps) {
  const attrs: Record<string, string> = {};
  for (const [key, value] of Object.entries(data)) {
    if (value !== undefined) attrs[`data-${key}`] = value;
  }
  return (
    <a href={href} class={className} title={title} data-testid={testid} onClick={followLink} {...attrs}>
      {children}
    </a>
  );
}

/** A muted line saying what is loading or what failed. */
export function Status({ loading, error, empty }: { loading?: boolean; error?: string; empty?: string }) {
  if (error) return <p class="error" role="alert">{error}</p>;
  if (loading) return <p class="muted">Loading…</p>;
  if (empty) return <p class="muted">{empty}</p>;
  return null;
}
