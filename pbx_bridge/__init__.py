"""pbx-bridge: link an Asterisk/FreePBX PBX to Alexa Smart Properties."""

__version__ = "0.1.0"
