"""Figures and standalone HTML reports for stored jobs."""
