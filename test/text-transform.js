// Jest transform for the chat page's files: a module whose default export is the file's text, as esbuild's `text`
// loader makes it in the appliance bundle.
module.exports = {
  process(sourceText) {
    return { code: `module.exports = ${JSON.stringify(sourceText)};` };
  },
};
