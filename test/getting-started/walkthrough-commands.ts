import { readFileSync } from 'fs';

/** The shell commands of one ```sh block of a page: comments dropped, continued lines joined. */
export interface CommandBlock {
  readonly commands: string[];
  /** The block as a script, for bash. */
  readonly script: string;
}

/** Every ```sh block of the Markdown page `file`, in order. */
export function shellBlocks(file: string): CommandBlock[] {
  const page = readFileSync(file, 'utf8');
  return [...page.matchAll(/```sh\n([\s\S]*?)```/g)].map((match) => {
    const commands = match[1]
      .replace(/\\\n\s*/g, '')
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '' && !line.startsWith('#'));
    return { commands, script: commands.join('\n') };
  });
}
