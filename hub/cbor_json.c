#include "cbor_json.h"

#include <cbor.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

#include "fleet/error.h"

#define MAX_DEPTH 16

static cJSON *item_json(cbor_item_t *it, int depth);

static cJSON *hex_json(const unsigned char *b, size_t n) {
  char *hex = malloc(n * 2 + 1);
  if (!hex) return NULL;
  for (size_t i = 0; i < n; i++) snprintf(hex + 2 * i, 3, "%02x", b[i]);
  hex[2 * n] = '\0';
  cJSON *j = cJSON_CreateString(hex);
  free(hex);
  return j;
}

static cJSON *string_json(cbor_item_t *it) {
  if (!cbor_string_is_definite(it)) return NULL;
  size_t n = cbor_string_length(it);
  char *s = malloc(n + 1);
  if (!s) return NULL;
  for (size_t i = 0; i < n; i++) s[i] = (char)cbor_string_handle(it)[i];
  s[n] = '\0';
  cJSON *j = cJSON_CreateString(s);
  free(s);
  return j;
}

static cJSON *map_json(cbor_item_t *it, int depth) {
  cJSON *obj = cJSON_CreateObject();
  struct cbor_pair *pairs = cbor_map_handle(it);
  for (size_t i = 0; obj && i < cbor_map_size(it); i++) {
    cJSON *key = cbor_isa_string(pairs[i].key) ? string_json(pairs[i].key) : NULL;
    cJSON *val = key ? item_json(pairs[i].value, depth + 1) : NULL;
    if (!key || !val) {
      cJSON_Delete(key);
      cJSON_Delete(val);
      cJSON_Delete(obj);
      return NULL;
    }
    cJSON_AddItemToObject(obj, cJSON_GetStringValue(key), val);
    cJSON_Delete(key);
  }
  return obj;
}

static cJSON *item_json(cbor_item_t *it, int depth) {
  if (depth > MAX_DEPTH) return NULL;
  switch (cbor_typeof(it)) {
  case CBOR_TYPE_UINT: return cJSON_CreateNumber((double)cbor_get_int(it));
  case CBOR_TYPE_NEGINT: return cJSON_CreateNumber(-1.0 - (double)cbor_get_int(it));
  case CBOR_TYPE_BYTESTRING:
    return cbor_bytestring_is_definite(it)
               ? hex_json(cbor_bytestring_handle(it), cbor_bytestring_length(it))
               : NULL;
  case CBOR_TYPE_STRING: return string_json(it);
  case CBOR_TYPE_ARRAY: {
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < cbor_array_size(it); i++) {
      cbor_item_t *e = cbor_array_get(it, i);
      cJSON *v = e ? item_json(e, depth + 1) : NULL;
      if (e) cbor_decref(&e);
      if (!v) {
        cJSON_Delete(arr);
        return NULL;
      }
      cJSON_AddItemToArray(arr, v);
    }
    return arr;
  }
  case CBOR_TYPE_MAP: return map_json(it, depth);
  case CBOR_TYPE_TAG: {
    cbor_item_t *inner = cbor_tag_item(it);
    cJSON *v = item_json(inner, depth + 1);
    cbor_decref(&inner);
    return v;
  }
  case CBOR_TYPE_FLOAT_CTRL:
    if (cbor_is_bool(it)) return cbor_get_bool(it) ? cJSON_CreateTrue() : cJSON_CreateFalse();
    if (cbor_float_ctrl_is_ctrl(it)) return cJSON_CreateNull();
    return cJSON_CreateNumber(cbor_float_get_float(it));
  default: return NULL;
  }
}

int cbor_to_json(const uint8_t *buf, size_t len, char **out) {
  struct cbor_load_result res;
  cbor_item_t *it = cbor_load(buf, len, &res);
  if (!it) return res.error.code == CBOR_ERR_MEMERROR ? FL_ERR_NOMEM : FL_ERR_MALFORMED;
  int rc = FL_ERR_MALFORMED;
  if (res.read == len) {
    cJSON *j = item_json(it, 0);
    *out = j ? cJSON_PrintUnformatted(j) : NULL;
    rc = *out ? FL_OK : j ? FL_ERR_NOMEM : FL_ERR_MALFORMED;
    cJSON_Delete(j);
  }
  cbor_decref(&it);
  return rc;
}
