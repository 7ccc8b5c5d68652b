"""The Amazon side: Login with Amazon tokens and the Alexa Smart Properties PBX API."""
