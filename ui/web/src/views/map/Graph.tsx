// The service map drawn by Cytoscape.js, laid out left to right by dagre (callers on
// the left, so the gateway is the leftmost node). Colours: health against baseline;
// suspects from the failing-hop analysis get a thick red outline.
import cytoscape, { type Core, type ElementDefinition } from "cytoscape";
import dagre from "cytoscape-dagre";
import { useEffect, useRef } from "preact/hooks";
import { HEALTH_COLORS } from "../../components/colors";
import type { MapModel } from "./model";

cytoscape.use(dagre);

/** Marked once, when the first map with nodes has been drawn (read by the browser test). */
export const MAP_RENDERED_MARK = "sightline:map-rendered";

const STYLE: cytoscape.StylesheetJson = [
  {
    selector: "node",
    style: {
      "background-color": "data(color)",
      label: "data(id)",
      color: "#d8dee9",
      "font-size": 15,
      "min-zoomed-font-size": 6,
      "text-valign": "bottom",
      "text-margin-y": 4,
      width: "data(size)",
      height: "data(size)",
      "border-width": 1,
      "border-color": "#0f1216",
      "text-outline-color": "#0f1216",
      "text-outline-width": 2,
    },
  },
  {
    selector: "edge",
    style: {
      "line-color": "data(color)",
      "target-arrow-color": "data(color)",
      "target-arrow-shape": "triangle",
      "curve-style": "bezier",
      width: "data(width)",
      opacity: 0.85,
      "arrow-scale": 0.8,
    },
  },
  { selector: "node.suspect", style: { "border-width": 3, "border-color": "#ff7b72", "border-style": "dashed" } },
  { selector: "node.top", style: { "border-width": 6, "border-style": "solid" } },
  {
    selector: "edge.suspect",
    style: { width: 4, "line-color": "#ff7b72", "target-arrow-color": "#ff7b72", "line-style": "dashed", opacity: 1, "z-index": 10 },
  },
  { selector: "edge.top", style: { width: 7, "line-style": "solid" } },
  { selector: ":selected", style: { "overlay-color": "#4c9aff", "overlay-opacity": 0.25, "overlay-padding": 6 } },
];

function elements(model: MapModel): ElementDefinition[] {
  const maxCalls = Math.max(1, ...model.edges.map((e) => e.window?.calls ?? 0));
  const maxSpans = Math.max(1, ...model.nodes.map((n) => n.window?.spans ?? 0));
  return [
    ...model.nodes.map((n) => ({
      group: "nodes" as const,
      data: {
        id: n.id,
        color: HEALTH_COLORS[n.health],
        size: 22 + 22 * Math.sqrt((n.window?.spans ?? 0) / maxSpans),
      },
      classes: n.suspect ? (n.rank === 1 ? "suspect top" : "suspect") : "",
    })),
    ...model.edges.map((e) => ({
      group: "edges" as const,
      data: {
        id: e.id,
        source: e.caller,
        target: e.callee,
        color: HEALTH_COLORS[e.health],
        width: 1.5 + 3 * Math.sqrt((e.window?.calls ?? 0) / maxCalls),
      },
      classes: e.suspect ? (e.rank === 1 ? "suspect top" : "suspect") : "",
    })),
  ];
}

export interface GraphProps {
  model: MapModel;
  /** `node:<service>` or `edge:<caller>-><callee>`. */
  selected: string | null;
  onSelect: (selection: string | null) => void;
}

export function Graph({ model, selected, onSelect }: GraphProps) {
  const container = useRef<HTMLDivElement>(null);
  const cy = useRef<Core | null>(null);
  const select = useRef(onSelect);
  select.current = onSelect;

  useEffect(() => {
    const instance = cytoscape({
      container: container.current,
      style: STYLE,
      minZoom: 0.2,
      maxZoom: 3,
      boxSelectionEnabled: false,
      autounselectify: false,
    });
    instance.on("tap", "node", (event) => select.current(`node:${event.target.id()}`));
    instance.on("tap", "edge", (event) => select.current(`edge:${event.target.id()}`));
    instance.on("tap", (event) => {
      if (event.target === instance) select.current(null);
    });
    cy.current = instance;
    return () => {
      instance.destroy();
      cy.current = null;
    };
  }, []);

  // New data: restyle in place when the same services and hops are drawn (baseline or
  // suspects arriving), otherwise redraw and lay out (cheap at tens of services).
  useEffect(() => {
    const instance = cy.current;
    if (!instance) return;
    const next = elements(model);
    const same =
      instance.elements().length === next.length && next.every((e) => instance.getElementById(String(e.data.id)).nonempty());
    if (same) {
      instance.batch(() => {
        for (const e of next) {
          const element = instance.getElementById(String(e.data.id));
          element.data(e.data);
          element.classes(e.classes ?? "");
        }
      });
      return;
    }
    instance.batch(() => {
      instance.elements().remove();
      instance.add(next);
    });
    const layout = instance.layout({
      name: "dagre",
      rankDir: "LR",
      nodeSep: 8,
      rankSep: 170,
      edgeSep: 4,
      fit: true,
      padding: 24,
      animate: false,
    } as cytoscape.LayoutOptions);
    layout.one("layoutstop", () => {
      if (model.nodes.length === 0) return;
      instance.one("render", () => {
        container.current?.setAttribute("data-rendered", String(instance.nodes().length));
        if (performance.getEntriesByName(MAP_RENDERED_MARK).length === 0) {
          performance.mark(MAP_RENDERED_MARK);
        }
      });
    });
    layout.run();
  }, [model]);

  useEffect(() => {
    const instance = cy.current;
    if (!instance) return;
    instance.elements().unselect();
    if (!selected) return;
    const id = selected.slice(selected.indexOf(":") + 1);
    const element = instance.getElementById(id);
    if (element.nonempty()) element.select();
  }, [selected, model]);

  return (
    <div
      class="map-canvas"
      ref={container}
      data-testid="service-map"
      data-nodes={model.nodes.length}
      data-edges={model.edges.length}
      role="img"
      aria-label={`service map: ${model.nodes.length} services, ${model.edges.length} hops`}
    />
  );
}
