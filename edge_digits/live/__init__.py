"""Following a run from elsewhere: ``view`` serves the live web view of ``edge-digits run --http`` (the
annotated video, the settled strings, FPS, latency and power, as a page, Server-Sent Events and JSON) and
``mqtt`` publishes each settled reading to an MQTT broker. Both are ``RunObserver``s of the run loop: they
take each frame without ever slowing it, dropping what a slow consumer cannot take."""
