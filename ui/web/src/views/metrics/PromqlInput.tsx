// The PromQL box with autocompletion: metric names (with their type and help), label
// names and label values of the metric being filtered, functions and aggregations.
// Keys: ↑/↓ move through suggestions, Tab (or Enter after moving) accepts, Esc closes,
// Ctrl+Space opens, Enter runs the query.
import { useEffect, useRef, useState } from "preact/hooks";
import { isAbort } from "../../api";
import { labelNames, labelValues, metadata, type MetricMeta, metricNames } from "./api";
import {
  AGGREGATIONS,
  applySuggestion,
  type CompletionContext,
  completionContext,
  FUNCTIONS,
  rank,
  type Suggestion,
} from "./complete";

interface Props {
  value: string;
  onChange: (value: string) => void;
  onRun: () => void;
  start: number;
  end: number;
}

// Metric names and metadata change rarely: one fetch per page load.
let namesCache: Promise<string[]> | undefined;
let metaCache: Promise<Record<string, MetricMeta>> | undefined;
const labelCache = new Map<string, Promise<string[]>>();

function cached(key: string, load: () => Promise<string[]>): Promise<string[]> {
  let hit = labelCache.get(key);
  if (!hit) {
    hit = load();
    labelCache.set(key, hit);
    hit.catch(() => labelCache.delete(key));
    if (labelCache.size > 200) labelCache.delete(labelCache.keys().next().value as string);
  }
  return hit;
}

async function suggestionsFor(context: CompletionContext, start: number, end: number): Promise<Suggestion[]> {
  const signal = new AbortController().signal;
  // Label lookups use the range rounded to the minute, so typing reuses the cache.
  const s = Math.floor(start / 60_000) * 60_000;
  const e = Math.ceil(end / 60_000) * 60_000;
  switch (context.kind) {
    case "metric": {
      namesCache ??= metricNames(signal).catch((err) => {
        namesCache = undefined;
        throw err;
      });
      metaCache ??= metadata(signal).catch(() => ({}));
      const [names, meta] = await Promise.all([namesCache, metaCache]);
      const candidates: Suggestion[] = [
        ...names.map((n): Suggestion => ({
          label: n,
          kind: "metric",
          detail: meta[n] ? `${meta[n].type}${meta[n].help ? ` · ${meta[n].help}` : ""}` : undefined,
        })),
        ...AGGREGATIONS.map((n): Suggestion => ({ label: n, kind: "aggregation" })),
        ...FUNCTIONS.map((n): Suggestion => ({ label: n, kind: "function" })),
      ];
      return rank(candidates, context.prefix);
    }
    case "label-name": {
      const names = await cached(`n:${context.metric ?? ""}:${s}:${e}`, () => labelNames(context.metric, s, e, signal));
      return rank(
        names.map((n): Suggestion => ({ label: n, kind: "label" })),
        context.prefix,
      );
    }
    case "label-value": {
      const metric = context.label === "__name__" ? undefined : context.metric;
      const values = await cached(`v:${context.label}:${metric ?? ""}:${s}:${e}`, () =>
        labelValues(context.label, metric, s, e, signal),
      );
      return rank(
        values.map((v): Suggestion => ({ label: v, kind: "value" })),
        context.prefix,
      );
    }
    default:
      return [];
  }
}

export function PromqlInput({ value, onChange, onRun, start, end }: Props) {
  const input = useRef<HTMLInputElement>(null);
  const list = useRef<HTMLUListElement>(null);
  const [open, setOpen] = useState(false);
  const [items, setItems] = useState<Suggestion[]>([]);
  const [active, setActive] = useState(-1);
  const [context, setContext] = useState<CompletionContext>({ kind: "none" });
  const [error, setError] = useState<string>();
  const request = useRef(0);
  const timer = useRef(0);

  const refresh = (text: string, cursor: number, force = false) => {
    window.clearTimeout(timer.current);
    const ctx = completionContext(text, cursor);
    setContext(ctx);
    const wanted = force || ctx.kind === "label-name" || ctx.kind === "label-value" || (ctx.kind === "metric" && ctx.prefix.length >= 1);
    if (!wanted || ctx.kind === "none") {
      setOpen(false);
      return;
    }
    const id = ++request.current;
    timer.current = window.setTimeout(() => {
      suggestionsFor(ctx, start, end)
        .then((found) => {
          if (id !== request.current) return;
          // Nothing to offer once the word is complete and the only match.
          const done = found.length === 1 && ctx.kind !== "label-value" && found[0].label === ("prefix" in ctx ? ctx.prefix : "");
          setItems(found);
          setActive(-1);
          setOpen(found.length > 0 && !done);
          setError(undefined);
        })
        .catch((err) => {
          if (id !== request.current || isAbort(err)) return;
          setError(err instanceof Error ? err.message : String(err));
          setOpen(false);
        });
    }, 90);
  };

  useEffect(() => () => window.clearTimeout(timer.current), []);

  /** Drops pending lookups and closes the list (running, leaving the box). */
  const dismiss = () => {
    request.current++;
    window.clearTimeout(timer.current);
    setOpen(false);
  };

  useEffect(() => {
    if (active < 0) return;
    list.current?.children[active]?.scrollIntoView({ block: "nearest" });
  }, [active]);

  const accept = (suggestion: Suggestion) => {
    const element = input.current;
    if (!element) return;
    const cursor = element.selectionStart ?? value.length;
    const next = applySuggestion(value, cursor, completionContext(value, cursor), suggestion);
    onChange(next.text);
    setOpen(false);
    requestAnimationFrame(() => {
      element.focus();
      element.setSelectionRange(next.cursor, next.cursor);
      refresh(next.text, next.cursor);
    });
  };

  const onKeyDown = (e: KeyboardEvent) => {
    if (e.key === " " && e.ctrlKey) {
      e.preventDefault();
      const element = e.currentTarget as HTMLInputElement;
      refresh(element.value, element.selectionStart ?? element.value.length, true);
      return;
    }
    if (!open || items.length === 0) {
      if (e.key === "Enter") {
        e.preventDefault();
        dismiss();
        onRun();
      } else if (e.key === "ArrowDown") {
        const element = e.currentTarget as HTMLInputElement;
        refresh(element.value, element.selectionStart ?? element.value.length, true);
      }
      return;
    }
    switch (e.key) {
      case "ArrowDown":
        e.preventDefault();
        setActive((a) => (a + 1) % items.length);
        break;
      case "ArrowUp":
        e.preventDefault();
        setActive((a) => (a <= 0 ? items.length - 1 : a - 1));
        break;
      case "Tab":
        e.preventDefault();
        accept(items[Math.max(0, active)]);
        break;
      case "Enter":
        e.preventDefault();
        if (active >= 0) accept(items[active]);
        else {
          dismiss();
          onRun();
        }
        break;
      case "Escape":
        e.preventDefault();
        dismiss();
        break;
    }
  };

  const listId = "promql-suggestions";
  return (
    <div class="promql-box">
      <input
        ref={input}
        class="promql-input"
        data-testid="promql-input"
        type="text"
        spellcheck={false}
        autocomplete="off"
        role="combobox"
        aria-label="PromQL expression"
        aria-autocomplete="list"
        aria-expanded={open}
        aria-controls={listId}
        aria-activedescendant={open && active >= 0 ? `${listId}-${active}` : undefined}
        placeholder='PromQL, e.g. sum by (service) (rate(http_server_requests_seconds_count[5m]))   (Ctrl+Space: suggestions)'
        value={value}
        onInput={(e) => {
          const element = e.target as HTMLInputElement;
          onChange(element.value);
          refresh(element.value, element.selectionStart ?? element.value.length);
        }}
        onKeyDown={onKeyDown}
        onClick={(e) => {
          const element = e.target as HTMLInputElement;
          if (open) refresh(element.value, element.selectionStart ?? element.value.length);
        }}
        onBlur={dismiss}
      />
      {open && (
        <ul class="promql-suggestions" id={listId} role="listbox" ref={list} data-testid="promql-suggestions">
          {items.map((item, i) => (
            <li
              key={`${item.kind}:${item.label}`}
              id={`${listId}-${i}`}
              role="option"
              aria-selected={i === active}
              class={i === active ? "active" : ""}
              onMouseDown={(e) => {
                e.preventDefault();
                accept(item);
              }}
              onMouseEnter={() => setActive(i)}
            >
              <span class={`kind kind-${item.kind}`}>{KIND_LABEL[item.kind]}</span>
              <span class="label">{item.label}</span>
              {item.detail && <span class="detail">{item.detail}</span>}
            </li>
          ))}
          <li class="hint" aria-hidden="true">
            ↑↓ to choose · Tab to accept · Esc to close · {contextHint(context)}
          </li>
        </ul>
      )}
      {error && <div class="promql-suggest-error muted">suggestions unavailable: {error}</div>}
    </div>
  );
}

const KIND_LABEL: Record<Suggestion["kind"], string> = {
  metric: "metric",
  function: "fn",
  aggregation: "agg",
  label: "label",
  value: "value",
};

function contextHint(context: CompletionContext): string {
  switch (context.kind) {
    case "label-name":
      return context.metric ? `labels of ${context.metric}` : "label names";
    case "label-value":
      return `values of ${context.label}${context.metric && context.label !== "__name__" ? ` on ${context.metric}` : ""}`;
    case "metric":
      return "metrics and functions";
    default:
      return "";
  }
}
