/** commander's argument parser for repeatable options (`-f a -f b` → `['a', 'b']`). */
export const collect = (value: string, previous: string[] = []): string[] => [...previous, value];
