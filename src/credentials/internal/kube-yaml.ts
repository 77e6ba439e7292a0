/**
 * YAML reading with the scalar rules Kubernetes uses (go-yaml v2 behind sigs.k8s.io/yaml): YAML 1.1
 * booleans and integers (`yes`, `on`, `0777`, `1_000`), duplicate keys rejected, but timestamps and
 * sexagesimal numbers (`1:20`) kept as strings, as go-yaml decodes them into untyped values.
 */
import { parseAllDocuments, type Document, type Tags } from 'yaml';

function kubeTags(tags: Tags): Tags {
  return tags.filter((t) => {
    if (typeof t === 'string') return t !== 'timestamp' && t !== 'intTime' && t !== 'floatTime';
    return !/timestamp$/.test(t.tag) && !('format' in t && t.format === 'TIME');
  });
}

/** Parses every document of `text` with Kubernetes' YAML scalar rules. */
export function parseKubeYamlDocuments(text: string): Document[] {
  const docs = parseAllDocuments(text, { version: '1.1', uniqueKeys: true, customTags: kubeTags });
  return Array.isArray(docs) ? docs : [];
}
