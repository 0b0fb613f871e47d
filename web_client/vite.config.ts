// Builds the static pages into dist/ and runs the unit tests (Vitest reads the `test` block).
import { defineConfig } from "vitest/config";

export default defineConfig({
  // Relative asset URLs: the same build works at "/" and under any path prefix an ingress adds.
  base: "./",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: true,
    // Two pages: the Exec Sandbox (index.html) and the mesh view (mesh.html, served at /mesh).
    rollupOptions: {
      input: {
        index: "index.html",
        mesh: "mesh.html",
      },
    },
  },
  test: {
    include: ["test/**/*.test.ts"],
    environment: "node",
  },
});
