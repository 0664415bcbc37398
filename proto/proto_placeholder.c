/* Replaced by the job spec and agent protocol modules. */
int proto_placeholder(void);
int
proto_placeholder(void)
{
    return 0;
}
