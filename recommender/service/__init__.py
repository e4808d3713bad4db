"""HTTP lookup service (FastAPI): create_app in app.py."""
