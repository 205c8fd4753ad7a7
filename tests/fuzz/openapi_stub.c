/* The API's contract is embedded into fleet-hub at build time; the fuzz
 * targets never serve it. */
extern const char hub_openapi_yaml[];
const char hub_openapi_yaml[] = "";
