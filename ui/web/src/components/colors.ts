// Colours that carry meaning across views: one stable hue per service, and the health
// scale of the service map.

/** A stable colour for a service name (same in the map, waterfall and scatter). */
export function serviceColor(service: string): string {
  let hash = 2166136261;
  for (let i = 0; i < service.length; i++) {
    hash ^= service.charCodeAt(i);
    hash = Math.imul(hash, 16777619);
  }
  // Hues 30..330: reds stay reserved for errors.
  const hue = 30 + ((hash >>> 0) % 300);
  return `hsl(${hue} 55% 58%)`;
}

/** Health of a node or hop against its baseline. */
export type Health = "ok" | "warn" | "error" | "idle";

export const HEALTH_COLORS: Record<Health, string> = {
  ok: "#3fb950",
  warn: "#d29922",
  error: "#f85149",
  idle: "#6e7681",
};
