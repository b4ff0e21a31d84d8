"""`qasr serve`: an OpenAI-compatible transcription server over worker processes that cannot leak.

Layout: `worker` (the child process: one provider, requests one at a time, `qasr.channel` on its
pipes) and `control` (its stdin read on a thread, so aborts reach a running decode through the
request's `qasr.cancel.Cancel`; its watch on the server), `pool` (the parent's view of the workers: start, watch, hand out, replace), `lease` (one
use of a worker, given back whatever happens), `upload` (bodies bounded in size and time as they
stream in), `formats` (OpenAI response formats), `app` (the HTTP routes), `realtime` (the
WebSocket), `state` (what they share), `server` (uvicorn with a draining shutdown), `metrics`,
`page.html` (the web page). See docs/server.md.
"""
