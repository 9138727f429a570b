"""The job store: SQL models, sessions and migrations, the job queue, datasets and artifact files.

Kept free of torch, Streamlit and numerical code so the CLI, the app and workers can import it
cheaply.
"""
