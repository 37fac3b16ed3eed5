"""xai-fer's built-in plugins, installed as ``xai_fer_plugins`` and loaded through the ``xai_fer`` entry points."""
