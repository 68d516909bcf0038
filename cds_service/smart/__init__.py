"""The SMART on FHIR app the cards link to: full explanation and bone-density chart (off unless configured).

blueprint.py: the routes (registered by api/app.py when OSTEO_CDS_SMART_CLIENT_ID is set); links.py: the
cards' `smart` links and the app's words; sessions.py: the server-side session store.
"""
