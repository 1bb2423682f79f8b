"""`resilience eoc`: the city's emergency desk (see resilience/eoc/service.py, db.py, app.py)."""
