// Builds the dashboard into dist/ with fixed file names: the shoal binary
// embeds dist/index.html, dist/assets/app.js and dist/assets/app.css
// (crates/shoal-http/src/dashboard.rs).
import { defineConfig } from 'vite';

export default defineConfig({
  base: './',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsDir: 'assets',
    cssCodeSplit: false,
    modulePreload: false,
    rollupOptions: {
      output: {
        entryFileNames: 'assets/app.js',
        chunkFileNames: 'assets/[name].js',
        assetFileNames: 'assets/app[extname]',
      },
    },
  },
});
