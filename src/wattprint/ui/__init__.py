"""The dashboard: a small read-only web app over the run store (`wattprint ui`, extra "ui").

from wattprint.ui.app import create_app      # Starlette app; serve with wattprint.ui.server
"""
