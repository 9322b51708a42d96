/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.ts$': 'ts-jest',
    // commander is published as ES modules only; Node (>= 20.19) requires it natively, Jest's module loader
    // (before Node 24.9) does not, so its files are compiled to CommonJS for the tests.
    '/node_modules/commander/.+\\.js$': ['ts-jest', { tsconfig: { allowJs: true, checkJs: false }, diagnostics: false }],
  },
  transformIgnorePatterns: ['/node_modules/(?!commander/)'],
};
