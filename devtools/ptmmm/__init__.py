"""A Google Sheets API stand-in for the KPI sheet tests and the demo."""
