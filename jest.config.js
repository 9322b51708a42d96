/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.ts$': 'ts-jest',
    // The chat page's files load as text, as the appliance bundle embeds them.
    '/lib/appliance/ui/[^/]+\\.(html|css|js|svg)$': '<rootDir>/test/text-transform.js',
  },
};
