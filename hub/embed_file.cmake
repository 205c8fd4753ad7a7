# cmake -DINPUT=file -DOUTPUT=file.c -DSYMBOL=name -P embed_file.cmake
# Writes OUTPUT defining `const char SYMBOL[]`: INPUT's bytes plus a NUL.
# Bytes are written in hex, so any content (quotes, backslashes) is safe.
file(READ ${INPUT} hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n  "
       bytes "${bytes}")
file(WRITE ${OUTPUT}.tmp
     "/* Generated from ${INPUT} by embed_file.cmake. Do not edit. */\n"
     "extern const char ${SYMBOL}[];\n"
     "const char ${SYMBOL}[] = {\n  ${bytes}0x00};\n")
file(COPY_FILE ${OUTPUT}.tmp ${OUTPUT} ONLY_IF_DIFFERENT)
file(REMOVE ${OUTPUT}.tmp)
