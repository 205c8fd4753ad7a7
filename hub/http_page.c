/* The operator console: the files of hub/console/ (an HTML page, its CSS and
 * its script; no build step, nothing fetched from elsewhere), compiled into
 * the program by hub/console/console.cmake and served as they are:
 *
 *   GET /                      index.html
 *   GET /console/console.css   the style (one column below 700 px)
 *   GET /console/console.js    the application: reads the JSON API, follows
 *                              GET /v1/events, sends the operator's commands
 *
 * The page may run only its own files (Content-Security-Policy); the script
 * puts values in with textContent, never as HTML. */
#include <string.h>

#include "http_internal.h"

extern const char hub_console_index_html[], hub_console_css[], hub_console_js[];

typedef struct console_file {
  const char *url;
  const char *body;
  const char *type;
} console_file;

static const console_file console_files[] = {
    {"/", hub_console_index_html, "text/html; charset=utf-8"},
    {"/console/console.css", hub_console_css, "text/css; charset=utf-8"},
    {"/console/console.js", hub_console_js, "text/javascript; charset=utf-8"},
};

static enum MHD_Result serve_page(struct MHD_Connection *c, const char *url, http_events *ev) {
  static const char missing[] = "{\"error\":\"no such file\",\"code\":\"not_found\"}";
  const console_file *f = NULL;
  for (size_t i = 0; i < sizeof console_files / sizeof console_files[0]; i++)
    if (strcmp(console_files[i].url, url) == 0) f = &console_files[i];
  struct MHD_Response *resp = MHD_create_response_from_buffer(
      f ? strlen(f->body) : strlen(missing), (void *)(f ? f->body : missing),
      MHD_RESPMEM_PERSISTENT);
  if (!resp) return MHD_NO;
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, f ? f->type : "application/json");
  /* a new hub brings new files: the browser asks again each time (cheap, local) */
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
  MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
  MHD_add_response_header(resp, "Content-Security-Policy",
                          "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'");
  enum MHD_Result ret = MHD_queue_response(c, f ? MHD_HTTP_OK : MHD_HTTP_NOT_FOUND, resp);
  MHD_destroy_response(resp);
  return ret;
}

const http_raw_route http_page_route = {serve_page};
