// Built by the `ui` crate's build script (ui/build.rs), which sets SIGHTLINE_UI_OUT to a
// directory under cargo's OUT_DIR; `npm run build` by hand writes to ./dist.
import { defineConfig } from "vite";

export default defineConfig({
  // The app is served under /ui/ (the server answers `/` with the same index.html).
  base: "/ui/",
  build: {
    outDir: process.env.SIGHTLINE_UI_OUT ?? "dist",
    emptyOutDir: true,
    assetsDir: "assets",
    sourcemap: false,
    chunkSizeWarningLimit: 2048,
  },
  oxc: {
    jsx: { runtime: "automatic", importSource: "preact" },
  },
});
