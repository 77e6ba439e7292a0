/**
 * YAML reading with the scalar rules Kubernetes uses (go-yaml v2 behind sigs.k8s.io/yaml): YAML 1.1
 * booleans and integers (`yes`, `on`, `0777`, `1_000`), duplicate keys rejected, but timestamps and
 * sexagesimal numbers (`1:20`) kept as strings, as go-yaml decodes them into untyped values.
 *
 * Floats follow go-yaml's resolver, not the `yaml` package's YAML 1.1 tags: a plain scalar is a float
 * only when it has a digit (`1e3`, `.5`, `1.`, `6.5e4`); the package's 1.1 patterns also take `e404`,
 * `.` or `-e5` as floats (NaN), so a pod named `e404` would silently lose its name. Kubernetes reads
 * those as strings, and so does kimg.
 */
import { parseAllDocuments, type Document, type Tags } from 'yaml';

const FLOAT_TAG = 'tag:yaml.org,2002:float';
/** go-yaml's float form (underscores allowed between digits as its resolver strips them). */
const GO_YAML_FLOAT = /^[-+]?(?:\.[0-9][0-9_]*|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?$/;

function kubeTags(tags: Tags): Tags {
  return tags
    .filter((t) => {
      if (typeof t === 'string') return t !== 'timestamp' && t !== 'intTime' && t !== 'floatTime';
      return !/timestamp$/.test(t.tag) && !('format' in t && t.format === 'TIME');
    })
    .map((t) => {
      if (typeof t === 'string' || t.tag !== FLOAT_TAG || !('test' in t) || t.test === undefined) return t;
      // `.inf`/`.nan` stay; the numeric forms must carry a digit.
      if (t.test.test('.nan')) return t;
      const own = t.test;
      return {
        ...t,
        test: new RegExp(`^(?=${GO_YAML_FLOAT.source.slice(1)})${own.source.replace(/^\^/, '')}`),
      };
    });
}

/** Parses every document of `text` with Kubernetes' YAML scalar rules. */
export function parseKubeYamlDocuments(text: string): Document[] {
  const docs = parseAllDocuments(text, { version: '1.1', uniqueKeys: true, customTags: kubeTags });
  return Array.isArray(docs) ? docs : [];
}
