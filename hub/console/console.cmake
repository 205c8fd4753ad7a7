# The operator console's files (hub/console/: HTML, CSS, JS, no build step)
# compiled into the program by embed_file.cmake, like hub/schema.sql:
#   hub_console_sources(VAR) sets VAR to the generated .c files, each
#   defining `const char hub_console_<name>[]` (hub/http_page.c serves them).
# Included by hub/CMakeLists.txt and by the fuzz project (tests/fuzz/).
set(HUB_CONSOLE_DIR ${CMAKE_CURRENT_LIST_DIR})
set(HUB_EMBED_SCRIPT ${CMAKE_CURRENT_LIST_DIR}/../embed_file.cmake)

function(hub_console_sources VAR)
  set(generated)
  foreach(pair "index.html:index_html" "console.css:css" "console.js:js")
    string(REPLACE ":" ";" parts ${pair})
    list(GET parts 0 file)
    list(GET parts 1 symbol)
    set(out ${CMAKE_CURRENT_BINARY_DIR}/console_${symbol}.c)
    add_custom_command(
      OUTPUT ${out}
      COMMAND ${CMAKE_COMMAND} -DINPUT=${HUB_CONSOLE_DIR}/${file} -DOUTPUT=${out}
              -DSYMBOL=hub_console_${symbol} -P ${HUB_EMBED_SCRIPT}
      DEPENDS ${HUB_CONSOLE_DIR}/${file} ${HUB_EMBED_SCRIPT}
      COMMENT "Embedding hub/console/${file}"
      VERBATIM)
    list(APPEND generated ${out})
  endforeach()
  set(${VAR} ${generated} PARENT_SCOPE)
endfunction()
