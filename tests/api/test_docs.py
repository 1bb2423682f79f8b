"""`/api/v1/docs`: Swagger UI from the package, under the UI's Content-Security-Policy.

(tests/browser/test_ui.py renders it in chromium and checks that no request leaves the
gateway and the policy blocks nothing.)
"""

from __future__ import annotations

import re

from resilience.api.app import SECURITY_HEADERS

from .conftest import Api

CSP = SECURITY_HEADERS["Content-Security-Policy"]


async def test_the_docs_page_loads_nothing_from_another_origin(api: Api) -> None:
    anonymous = api.client(role=None)
    page = await anonymous.get("/api/v1/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == CSP
    assert "script-src 'self'" in CSP and "default-src 'self'" in CSP
    refs = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert len(refs) >= 4, refs
    for ref in refs:
        assert ref.startswith("/") and not ref.startswith("//"), ref
        asset = await anonymous.get(ref)
        assert asset.status_code == 200, ref
        assert asset.headers["content-security-policy"] == CSP, ref
    assert "<script>" not in page.text  # no inline script: the policy would block it
    assert "cdn" not in page.text.lower()
    init = (await anonymous.get("/api/v1/docs/init.js")).text
    assert '"/api/v1/openapi.json"' in init and "validatorUrl: null" in init
