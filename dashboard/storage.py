from whitenoise.storage import CompressedManifestStaticFilesStorage


class ForgivingManifestStaticFilesStorage(CompressedManifestStaticFilesStorage):
    """Hashed, compressed static files; their plain names when collectstatic has not run.

    Without this, a server started before ``collectstatic`` answers every page
    with a 500; with it the page renders and WhiteNoise serves the file from
    the app folders (WHITENOISE_USE_FINDERS).
    """

    manifest_strict = False

    def hashed_name(self, name, content=None, filename=None):
        try:
            return super().hashed_name(name, content, filename)
        except ValueError:
            # The file is not in STATIC_ROOT yet: nothing to hash.
            return name
