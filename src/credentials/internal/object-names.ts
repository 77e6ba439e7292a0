/**
 * Object name rules as the API server validates them (apimachinery
 * `pkg/util/validation/validation.go`: `IsDNS1123Subdomain`, `IsDNS1123Label`; kubernetes
 * `pkg/apis/core/validation`: a Pod's name is a DNS-1123 subdomain, a namespace a DNS-1123 label).
 * The kubelet's file source refuses static pods that fail them; kimg refuses them in every manifest it
 * reads, so a name reaching a table, an event or the status page is plain lowercase text.
 */

const LABEL = '[a-z0-9]([-a-z0-9]*[a-z0-9])?';
const DNS1123_LABEL = new RegExp(`^${LABEL}$`);
const DNS1123_SUBDOMAIN = new RegExp(`^${LABEL}(\\.${LABEL})*$`);

/** The API server's message for a value that is not a DNS-1123 subdomain, or undefined when it is. */
export function dns1123SubdomainProblem(value: string): string | undefined {
  if (value.length > 253) return 'must be no more than 253 characters';
  if (!DNS1123_SUBDOMAIN.test(value)) {
    return "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
  }
  return undefined;
}

/** The API server's message for a value that is not a DNS-1123 label, or undefined when it is. */
export function dns1123LabelProblem(value: string): string | undefined {
  if (value.length > 63) return 'must be no more than 63 characters';
  if (!DNS1123_LABEL.test(value)) {
    return "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
  }
  return undefined;
}
