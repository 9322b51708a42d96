// The chat page's files are imported as their text (see ui-assets.ts).
declare module '*.html' {
  const text: string;
  export default text;
}
declare module '*.css' {
  const text: string;
  export default text;
}
declare module '*.svg' {
  const text: string;
  export default text;
}
declare module '*/ui/app.js' {
  const text: string;
  export default text;
}
