pipeline "p" {
  filter "basic_auth" {
    htpasswd_file = "md5.htpasswd" # ERROR: Cannot build filter "basic_auth"
  }
  filter "respond" {}
}
