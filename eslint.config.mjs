import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  // cloud-init/host/agent-host.js is built from host/ (cloud-init/host-bundle.ts), not tracked.
  {
    ignores: [
      "node_modules/",
      "bin/",
      ".cache/",
      "jest.config.js",
      "cloud-init/host/agent-host.js",
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/no-unused-vars": [
        "error",
        { argsIgnorePattern: "^_", varsIgnorePattern: "^_", ignoreRestSiblings: true },
      ],
    },
  },
  {
    // scripts/test.js runs before `npm ci` (plain Node, CommonJS, no dependency).
    files: ["scripts/*.js"],
    languageOptions: {
      sourceType: "commonjs",
      globals: { require: "readonly", process: "readonly", __dirname: "readonly" },
    },
    rules: { "@typescript-eslint/no-require-imports": "off" },
  },
  {
    // Tests walk parsed YAML and mocked inputs of arbitrary shape.
    files: ["tests/**/*.ts"],
    rules: { "@typescript-eslint/no-explicit-any": "off" },
  },
);
