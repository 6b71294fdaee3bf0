"""One router per capability; each route is one library call in the caller's scope."""
