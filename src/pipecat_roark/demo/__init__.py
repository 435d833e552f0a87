"""``pipecat-roark demo``: a real Pipecat voice call, played offline from a script.

The caller's lines are spoken by a neural voice into a real pipeline (Silero VAD,
pocketsphinx recognition, a scripted LLM making real function calls, an espeak-ng TTS),
and ``RoarkObserver`` ships the call like any other. Needs the ``[demo]`` extra.
"""
