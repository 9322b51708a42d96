import { Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { roleInAccount } from '../lib';

test("names the role's account, narrowed to the role by aws:PrincipalArn", () => {
  const statement = new iam.PolicyStatement({ principals: [roleInAccount('222222222222', 'inference')], actions: ['kms:Decrypt'], resources: ['*'] });
  expect(new Stack().resolve(statement.toStatementJson())).toEqual({
    Effect: 'Allow',
    Action: 'kms:Decrypt',
    Resource: '*',
    Principal: { AWS: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':iam::222222222222:root']] } },
    Condition: {
      ArnEquals: { 'aws:PrincipalArn': { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':iam::222222222222:role/inference']] } },
    },
  });
});

test('rejects an account that is not 12 digits and a name IAM would refuse, at synth time', () => {
  expect(() => roleInAccount('2222', 'inference')).toThrow('roleInAccount: the account must be a 12-digit AWS account id; got "2222"');
  expect(() => roleInAccount('222222222222', 'role/inference')).toThrow(
    'roleInAccount: "role/inference" is not an IAM role name (1-64 letters, digits and +=,.@_-)',
  );
});
