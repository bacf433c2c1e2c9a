def ai_server_health(*, use_cache: bool = True):
    raise NotImplementedError
