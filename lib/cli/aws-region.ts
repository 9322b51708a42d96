/**
 * Resolves the Region an AWS SDK client will call, failing with how to set one when there is none (before any
 * request is made).
 *
 * @param what what the Region is for, e.g. "to read the image in"
 */
export async function requireRegion(
  client: { config: { region: () => Promise<string> } },
  what: string,
): Promise<string> {
  return client.config.region().catch(() => {
    throw new Error(
      `No AWS Region ${what}: pass --region <region>, or set AWS_REGION or a region in your AWS profile ` +
        '(aws configure set region <region>)',
    );
  });
}
