// @tanstack/virtual-core bound to Preact: one Virtualizer per list, re-rendering the
// list when its visible range or measured sizes change.
import {
  elementScroll,
  observeElementOffset,
  observeElementRect,
  Virtualizer,
  type VirtualizerOptions,
} from "@tanstack/virtual-core";
import { useEffect, useLayoutEffect, useReducer, useState } from "preact/hooks";

type Options = Pick<
  VirtualizerOptions<HTMLDivElement, HTMLElement>,
  "count" | "getScrollElement" | "estimateSize" | "overscan" | "getItemKey"
>;

/** A virtualizer over a scrolling element; rows measure themselves with `measureElement`. */
export function useVirtualizer(options: Options): Virtualizer<HTMLDivElement, HTMLElement> {
  const [, rerender] = useReducer((n: number) => n + 1, 0);
  const full: VirtualizerOptions<HTMLDivElement, HTMLElement> = {
    observeElementRect,
    observeElementOffset,
    scrollToFn: elementScroll,
    ...options,
    onChange: () => rerender(0),
  };
  const [instance] = useState(() => new Virtualizer<HTMLDivElement, HTMLElement>(full));
  instance.setOptions(full);
  useEffect(() => instance._didMount(), [instance]);
  useLayoutEffect(() => instance._willUpdate());
  return instance;
}
