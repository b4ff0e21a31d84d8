"""`qasr serve`: an OpenAI-compatible transcription server over worker processes that cannot leak.

Layout: `worker` (the child process: one model, requests one at a time, JSON lines on its pipes),
`pool` (the parent's view of the workers: dispatch, health, replacement by RSS or request count,
death mid-request), `formats` (OpenAI response formats), `app` (the Starlette routes), `page.html`
(the web page). See docs/server.md.
"""
