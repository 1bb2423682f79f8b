"""The HTTP side of the controller: the API, its live stream, the tablet UI and the runbooks.

`create_app(controller)` builds the FastAPI app; `ApiServer` serves it with uvicorn
in the controller's own event loop. The API reads what the controller publishes
and posts commands to its inbox; it never calls a driver.
"""

from resilience.api.app import close_app, create_app
from resilience.api.server import ApiServer

__all__ = ["ApiServer", "close_app", "create_app"]
