"""The Streamlit dashboard over processing reports. Run with ``streamlit run dashboard/app.py``."""
