def test_client_logs_into_its_own_database(client):
    g = client.log(kind="chat", prompt="hello")
    assert client.get(g.id).prompt == "hello"
