// Builds the static page into dist/ and runs the unit tests (Vitest reads the `test` block).
import { defineConfig } from "vitest/config";

export default defineConfig({
  // Relative asset URLs: the same build works at "/" and under any path prefix an ingress adds.
  base: "./",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: true,
  },
  test: {
    include: ["test/**/*.test.ts"],
    environment: "node",
  },
});
