#!/bin/sh
# GET shows the entries; POST appends the request body as an entry (stored in the kvstore).
store="$KVSTORE_URL/cgi-bin/kv?entries"
if [ "$REQUEST_METHOD" = POST ]; then
  entry="$(head -c "${CONTENT_LENGTH:-0}")"
  { wget -q -O- "$store" 2>/dev/null; printf '%s\n' "$entry"; } > /tmp/entries
  wget -q -O- --post-file=/tmp/entries "$store" >/dev/null
fi
printf 'Content-Type: text/plain\r\n\r\n%s\n' "$TITLE"
wget -q -O- "$store" 2>/dev/null
