#!/bin/sh
# GET /cgi-bin/kv?KEY reads KEY; PUT or POST /cgi-bin/kv?KEY stores the request body.
key="$QUERY_STRING"
case "$key" in ''|*[!A-Za-z0-9_-]*) printf 'Status: 400\r\n\r\nbad key\n'; exit 0;; esac
if [ "${#key}" -gt "$MAX_KEY_LENGTH" ]; then printf 'Status: 400\r\n\r\nkey too long\n'; exit 0; fi
case "$REQUEST_METHOD" in
  GET) if [ -f "/data/$key" ]; then printf 'Content-Type: text/plain\r\n\r\n'; cat "/data/$key";
       else printf 'Status: 404\r\n\r\nnot found\n'; fi;;
  PUT|POST) head -c "${CONTENT_LENGTH:-0}" > "/data/$key"; printf 'Status: 204\r\n\r\n';;
  *) printf 'Status: 405\r\n\r\n';;
esac
