// Lint rules: the recommended sets, plus the few that catch real bugs in async server code.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/**', 'data/**', 'test/fixtures/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
      'no-control-regex': 'off',
    },
  },
  // The browser pages (src/http/console): plain ES modules run by the browser.
  {
    files: ['src/http/console/**/*.js'],
    languageOptions: {
      globals: Object.fromEntries(
        ['window', 'document', 'location', 'history', 'fetch', 'sessionStorage', 'localStorage', 'performance', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'console', 'atob', 'URLSearchParams', 'FormData', 'AbortController', 'TextDecoderStream', 'DOMParser', 'Node', 'btoa', 'TextEncoder', 'TextDecoder', 'crypto', 'WebSocket'].map((g) => [g, 'readonly']),
      ),
    },
  },
);
